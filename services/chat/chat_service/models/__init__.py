"""The models this service serves: the catalog of their settings and the pool that hosts their engines."""
