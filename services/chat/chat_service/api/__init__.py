"""The HTTP routes: thin FastAPI routers that hand wire models to the serving layer."""
