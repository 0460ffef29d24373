"""
Audit of issue 16 (B12 hooks, B13 live events) through the in-process API:
answers a user sees that the end-to-end suites do not pin.
"""

from tests.test_web import APITestCase

HOOK = {"url": "http://receiver.test/hook", "events": ["job.completed"]}


class HookAnswerTests(APITestCase):
    """The hook routes' answers."""

    def test_unknown_hook_is_named_a_hook(self):
        """A 404 of GET/DELETE /hook/{name} names the hook (not a schedule: both route mixins had a ``_found``)."""
        for method in ("GET", "DELETE"):
            code, body = self.call(method, "/hook/nope")
            self.assertEqual(code, 404)
            self.assertEqual(body["message"], "hook 'nope' is not defined")

    def test_no_method_shared_by_two_route_mixins(self):
        """No two route mixins of the API define the same helper (the later one would be silently shadowed)."""
        from fireworq.web.app import FireworqAPI

        owners = {}
        for base in FireworqAPI.__mro__[1:]:
            for key in vars(base):
                if not key.startswith("__"):
                    owners.setdefault(key, []).append(base.__name__)
        self.assertEqual({k: v for k, v in owners.items() if len(v) > 1}, {})
