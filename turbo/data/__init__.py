"""Records, readers, templating and tokenisation, one module per dataset type, collators."""
