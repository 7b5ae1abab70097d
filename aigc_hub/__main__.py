import sys

from . import serving_threads

if sys.argv[1:2] == ["serve"]:
    serving_threads()

from .cli import main  # noqa: E402

if __name__ == "__main__":  # (an engine process, spawned, imports this module again under another name)
    main()
