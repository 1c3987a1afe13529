"""The benchmark's jobs for django-edgejobs, as an installed app (its jobs.py is autodiscovered)."""
