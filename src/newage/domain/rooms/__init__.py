"""Chat rooms: members, roles, mutes, connection policies and history."""
