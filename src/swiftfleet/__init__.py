"""swiftfleet: provision GPU clusters and run ms-swift on them."""

__version__ = "0.1.0"
