"""Trainer-agnostic helpers (checkpoint IO, run layout, metrics, schedules, MFU, plots, Ray sizing).

Nothing here knows about Paint-by-Example; a PhotoDoodle trainer reuses the same pieces.
"""
