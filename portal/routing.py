"""URLs built once: a page's chrome asks for the same few dozen URLs on every request (the
tabs, the static files, the forms' actions), and werkzeug builds each anew (about a tenth of
a full device page's Python time). Building is a pure function of the rules, the arguments and
the adapter's script name, host and scheme, so the result is kept, keyed by all of them, and
forgotten when a rule is added. Arguments that cannot be a key (a list) are built as before."""
from __future__ import annotations

from werkzeug.routing import Map, MapAdapter

KEEP = 4096  # distinct URLs kept; row links (one per device) come and go, the chrome's stay


class _BuiltOnce(MapAdapter):
    def build(self, endpoint, values=None, method=None, force_external=False, append_unknown=True,
              url_scheme=None) -> str:
        try:
            key = (endpoint, tuple(values.items()) if values else (), method, force_external, append_unknown,
                   url_scheme, self.script_name, self.server_name, self.subdomain, self.url_scheme)
            url = self.map.built.get(key)
        except TypeError:  # an unhashable argument
            return super().build(endpoint, values, method, force_external, append_unknown, url_scheme)
        if url is None:
            url = super().build(endpoint, values, method, force_external, append_unknown, url_scheme)
            if len(self.map.built) >= KEEP:
                self.map.built.clear()
            self.map.built[key] = url
        return url


class UrlMap(Map):
    """Flask's url_map_class for the portal (portal.create_app)."""

    def __init__(self, *args, **kwargs):
        self.built: dict = {}
        super().__init__(*args, **kwargs)

    def add(self, rulefactory) -> None:
        self.built.clear()
        super().add(rulefactory)

    def bind(self, *args, **kwargs) -> MapAdapter:
        return _built_once(super().bind(*args, **kwargs))

    def bind_to_environ(self, *args, **kwargs) -> MapAdapter:
        return _built_once(super().bind_to_environ(*args, **kwargs))


def _built_once(adapter: MapAdapter) -> MapAdapter:
    # werkzeug has no setting for its adapter class; the subclass only adds the cache to build().
    adapter.__class__ = _BuiltOnce
    return adapter
