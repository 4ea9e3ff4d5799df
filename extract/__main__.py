"""Entry point of ``python -m extract`` (batch loads), ``python -m extract stream`` (the events stream,
implemented in ``extract.stream``; ``make stream`` calls it this way) and ``python -m extract init`` (a
new source's files, ``extract.scaffold``)."""

import sys

if sys.argv[1:2] == ["init"]:
    from extract.scaffold.cli import main as init_main

    sys.exit(init_main(sys.argv[2:]))

if sys.argv[1:2] == ["stream"]:
    from extract.stream.__main__ import main as stream_main

    sys.exit(stream_main(sys.argv[2:]))

from extract.runner import main

sys.exit(main())
