"""The real adapters, with fakes at the client libraries' transports."""
