"""The FastAPI web app: pages, rater UI, admin, plots. Never imports `training`."""
