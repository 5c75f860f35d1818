"""Server functions, the files area and static resources."""
