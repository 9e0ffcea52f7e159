"""The error of a search request that cannot be answered."""


class SearchError(ValueError):
    """A search request that cannot be answered; the message names the field and the fix."""
