"""The frozen app's entry point: the same `rlstudio` command as a pip install."""

from studio.launcher import main

raise SystemExit(main())
