"""``python -m framefleet.cli``."""

from framefleet.cli import main

main()
