"""photogram-admin: operator commands that work on the services' own stores."""
