"""Results read from storage: tables and verdict (``table``), the statistics behind the
verdict (``statistics``), figures, and what the dashboard shows (``artifacts``)."""
