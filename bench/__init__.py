"""The lab's benchmark: `python -m bench --quick` (under 10 minutes on 2 cores) or `python -m bench` (full)."""
