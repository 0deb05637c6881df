"""FastAPI app: REST, websockets, static panel; sits on top of session."""
