"""Data sources that packages on the machine provide, and (later) corpus builders and the store."""
