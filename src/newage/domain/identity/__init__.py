"""Who is connecting: authentication, trust, keys, sessions and presence."""
