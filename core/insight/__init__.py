"""Customer insight, free of GraphQL: health indicators and their thresholds, surveys, tier
overrides, RFM and engagement stages. Modules are imported one by one (no re-exports here),
so that ``core.services`` may use them without an import cycle."""
