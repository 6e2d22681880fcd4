"""The two services. Each imports `shared`, never the other."""
