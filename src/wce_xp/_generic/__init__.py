"""Array-API-only reference implementations (``xp`` is always a required keyword)."""
