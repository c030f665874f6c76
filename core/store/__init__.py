"""Where things are kept: the lab's folders (paths), settings, run folders (runs), the SQLite registry of runs
and jobs (registry), and sha256-verified files fetched from package registries (packages). The bottom layer."""
