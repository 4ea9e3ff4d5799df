"""Clear the one leftover a kill can leave that dlt does not clear itself: a package both normalized and
still extracted.

Why: dlt's normalize commits a package in two steps - it renames ``load/new/<id>`` to
``load/normalized/<id>`` and then deletes the extracted copy ``normalize/extracted/<id>`` (its log says
"Committing storage, do not kill this process" in between). A kill -9 between the two leaves the same
package in both places. Every later ``run()`` then normalizes the extracted copy again and fails on the
rename ("Directory not empty: .../load/new/<id> -> .../load/normalized/<id>"), so the pipeline never
recovers on its own (seen in the stream's kill -9 test). The normalized package is complete - the
rename is atomic - so the extracted copy is redundant and is deleted; the next run then loads the
normalized package as usual and nothing is lost or loaded twice.
"""

from __future__ import annotations

import logging

import dlt

from extract import dltcompat

log = logging.getLogger("extract.pending")


def drop_normalized_duplicates(pipeline: dlt.Pipeline) -> list[str]:
    """Delete extracted packages whose normalization was already committed; return their load ids."""
    extracted = set(pipeline.list_extracted_load_packages())
    if not extracted:
        return []
    committed = set(pipeline.list_normalized_load_packages())
    load_storage = dltcompat.load_storage(pipeline)
    if load_storage.is_storage_ready():
        committed |= set(load_storage.list_loaded_packages())
    duplicates = sorted(extracted & committed)
    if duplicates:
        storage = dltcompat.normalize_storage(pipeline)
        for load_id in duplicates:
            log.warning(
                "%s: package %s was normalized by a run killed before it removed the extracted copy;"
                " removing that copy (the normalized package is complete and loads next)",
                pipeline.pipeline_name,
                load_id,
            )
            storage.extracted_packages.delete_package(load_id)
    return duplicates
