"""The domain's ports: what it needs from storage, delivery and trust files."""
