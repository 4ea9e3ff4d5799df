"""Side-by-side benchmark of the pipeline against its peers and its limits (`python -m bench`)."""
