"""The pilot federation as package data (``gateway._pilot`` in the wheel): ``dsgo demo``
copies it into a working folder when it runs from an installed wheel (see README.md)."""
