"""The twistd plugin: found by twistd, lazy, and the options it parses."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

from fireworq.tap import Options
from tests.support.install import install_checkout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PluginTests(SynchronousTestCase):
    def test_plugin_is_found(self):
        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("fireworq", makers)
        self.assertEqual(makers["fireworq"].module, "fireworq.tap")

    def test_plugin_module_imports_no_reactor(self):
        """Loading the plugin imports neither the reactor nor the server."""
        code = (
            "import sys, twisted.plugins.fireworq_plugin;"
            "print('twisted.internet.reactor' in sys.modules, 'fireworq.service' in sys.modules,"
            " 'fireworq.server' in sys.modules)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.split(), ["False", "False", "False"])

    def test_no_init_in_plugins_folder(self):
        self.assertFalse(os.path.exists(os.path.join(REPO, "twisted", "plugins", "__init__.py")))
        self.assertFalse(os.path.exists(os.path.join(REPO, "twisted", "__init__.py")))


class InstalledPluginTests(SynchronousTestCase):
    """After ``pip install .``, twistd finds the plugin outside the clone."""

    def test_plugin_found_after_install(self):
        target = install_checkout(os.path.abspath(self.mktemp()))
        self.assertTrue(os.path.exists(os.path.join(target, "twisted", "plugins", "fireworq_plugin.py")))
        self.assertFalse(os.path.exists(os.path.join(target, "twisted", "plugins", "__init__.py")))
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]);"
            "from twisted.plugin import getPlugins; from twisted.application.service import IServiceMaker;"
            "import fireworq;"
            "found = 'fireworq' in [p.tapname for p in getPlugins(IServiceMaker)];"
            "plugin = sys.modules.get('twisted.plugins.fireworq_plugin');"
            "print(fireworq.__file__.startswith(sys.argv[1]), found, "
            "plugin is not None and plugin.__file__.startswith(sys.argv[1]))"
        )
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out = subprocess.run(
            [sys.executable, "-I", "-c", code, target], capture_output=True, text=True,
            check=True, cwd="/", env=env,
        )
        # The server, and the plugin twistd found, are the installed copies.
        self.assertEqual(out.stdout.split(), ["True", "True", "True"])


class OptionsTests(SynchronousTestCase):
    def test_options_become_settings(self):
        options = Options()
        options.parseOptions(["--queue-default=q", "--bind=127.0.0.1:9999", "--driver=in-memory"])
        self.assertEqual(options.config.queue_default, "q")
        self.assertEqual(options.config.bind_port, 9999)

    def test_bad_option_exits_2_with_one_line(self):
        from io import StringIO

        err = StringIO()
        self.patch(sys, "stderr", err)
        options = Options()
        with self.assertRaises(SystemExit) as caught:
            options.parseOptions(["--queue-default-max-workers=lots"])
        self.assertEqual(caught.exception.code, 2)
        lines = err.getvalue().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertIn("queue_default_max_workers", lines[0])
