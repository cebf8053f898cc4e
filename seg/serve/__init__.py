"""Serving: the predictor, the wire protocol, the protobuf record, the WSGI app, batch outputs, the
gunicorn server and the HTTP client. Only the predictor and the server's workers import MXNet."""
