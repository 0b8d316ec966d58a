"""The databases: devenv's marks, copies, the spare, templates and their cache, marking and seeding a new database."""
