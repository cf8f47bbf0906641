"""CLI command groups. Each module has `register(sub, groups)` adding its parsers; a parser sets
`func=handler`, and a handler returns (result dict, text for people)."""
