"""The five student reports as recipes: one registry entry per report, resolved to what can run here."""
from .recipes import (PRESETS, Preset, RunRecipe, get_preset, group_runs, list_groups, mark_run,
                      record_run, resolve, run_preset)

__all__ = ["PRESETS", "Preset", "RunRecipe", "get_preset", "group_runs", "list_groups", "mark_run", "record_run", "resolve", "run_preset"]
