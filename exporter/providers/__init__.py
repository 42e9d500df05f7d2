"""Provider clients: one module per provider, each endpoint a method plus a pure parser."""
