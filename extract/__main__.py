"""Entry point of ``python -m extract`` (batch loads) and ``python -m extract init`` (a new source's
files, ``extract.scaffold``). The events stream is a flow, not a loader: ``python -m elt stream``."""

import sys

if sys.argv[1:2] == ["init"]:
    from extract.scaffold.cli import main as init_main

    sys.exit(init_main(sys.argv[2:]))

if sys.argv[1:2] == ["stream"]:  # the stream's old address: one line that says where it went
    print("python -m extract: the stream moved; run `python -m elt stream` (make stream)", file=sys.stderr)
    sys.exit(2)

from extract.runner import main

sys.exit(main())
