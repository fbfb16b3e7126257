"""The image map `prebuilt build` writes, and how the extension finds the prebuilt CLI.

Pure Python (no Metaflow import), so it is unit-tested on its own. Errors are ImageMapError:
a message saying what is wrong, and a hint saying what to do.
"""

import json
import os
import re
import shlex
import shutil

IMAGE_MAP_ENV = "METAFLOW_PREBUILT_IMAGE_MAP"
CLI_ENV = "PREBUILT_CLI"
# Written by `prebuilt metaflow install` beside this file: the CLI that installed the extension.
INSTALL_RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prebuilt_install.json")
REMOTE_DECORATORS = ("kubernetes", "batch")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class ImageMapError(Exception):
    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint

    def __str__(self):
        text = super().__str__()
        return "%s\n%s" % (text, self.hint) if self.hint else text


def _fail_shape(path, what):
    raise ImageMapError(
        "The image map %s is not one prebuilt wrote: %s." % (path, what),
        "Run `prebuilt build <flow.py>` again (it rewrites the map), or point %s at the file it wrote."
        % IMAGE_MAP_ENV,
    )


def load_image_map(path):
    """Reads and checks the image map at `path`."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ImageMapError(
            "The image map %s (from %s) does not exist." % (path, IMAGE_MAP_ENV),
            "Run `prebuilt build <flow.py>` to build the images and write it, or unset %s."
            % IMAGE_MAP_ENV,
        )
    except OSError as e:
        raise ImageMapError("Could not read the image map %s: %s." % (path, e))
    try:
        data = json.loads(text)
    except ValueError as e:
        _fail_shape(path, "not valid JSON (%s)" % e)
    if not isinstance(data, dict):
        _fail_shape(path, "not a JSON object")
    if not isinstance(data.get("flow"), str):
        _fail_shape(path, "'flow' is missing")
    images = data.get("images")
    steps = data.get("steps")
    if not isinstance(images, dict) or not isinstance(steps, dict):
        _fail_shape(path, "'images' or 'steps' is missing")
    for name, entry in steps.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("image"), str)
            or not isinstance(entry.get("python"), str)
            or not (entry.get("envId") is None or isinstance(entry.get("envId"), str))
        ):
            _fail_shape(path, "step '%s' lacks image, python or envId" % name)
        env_id = entry.get("envId")
        if env_id is not None and not isinstance(images.get(env_id), dict):
            _fail_shape(path, "step '%s' names env %s, which is not in 'images'" % (name, env_id))
    return data


def check_flow(image_map, path, flow_name, flow_file):
    if image_map["flow"] != flow_name:
        raise ImageMapError(
            "The image map %s is for flow %s, not %s." % (path, image_map["flow"], flow_name),
            "Run `prebuilt build %s` and point %s at the map it writes."
            % (flow_file, IMAGE_MAP_ENV),
        )


def step_image(image_map, path, step_name, flow_file):
    """The step's prebuilt image: {image, python, envId, pullConfig}. A step that runs remotely
    with an environment must have one; anything else means the map is out of date."""
    entry = image_map["steps"].get(step_name)
    if entry is None or entry.get("envId") is None:
        why = (
            "is not in the image map %s" % path
            if entry is None
            else "has no environment in the image map %s (it was disabled when the map was built)" % path
        )
        raise ImageMapError(
            "Step '%s' runs remotely with --environment=prebuilt but %s." % (step_name, why),
            "Run `prebuilt build %s` (or `prebuilt run %s ...`, which builds what is missing) "
            "so that every remote step has its image." % (flow_file, flow_file),
        )
    image = image_map["images"][entry["envId"]]
    pull = image.get("pullConfig")
    return {
        "image": pinned_image(entry, image),
        "tag": entry["image"],
        "python": entry["python"],
        "envId": entry["envId"],
        "pullConfig": pull if isinstance(pull, dict) else {},
    }


def pinned_image(step_entry, image_entry):
    """The step's image by digest (`repo:tag@sha256:...`), so a moved or re-pushed tag never changes
    what a deployed workflow runs. Maps written before `pinnedImage` existed are pinned with the
    image's digest; the tag alone only when the map has no digest."""
    pinned = step_entry.get("pinnedImage")
    if isinstance(pinned, str) and "@sha256:" in pinned:
        return pinned
    tag = step_entry["image"]
    digest = image_entry.get("digest")
    if "@" in tag or not isinstance(digest, str) or not DIGEST.match(digest):
        return tag
    return "%s@%s" % (tag, digest)


def find_cli(environ=None, record_path=INSTALL_RECORD):
    """The prebuilt CLI command (argv list) and where it came from, or (None, reason)."""
    environ = os.environ if environ is None else environ
    explicit = (environ.get(CLI_ENV) or "").strip()
    if explicit:
        return shlex.split(explicit), CLI_ENV
    if os.path.isfile(record_path):
        try:
            with open(record_path, "r", encoding="utf-8") as f:
                recorded = json.load(f).get("cli")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if (
            isinstance(recorded, list)
            and recorded
            and all(isinstance(a, str) for a in recorded)
            and all(os.path.exists(a) for a in recorded if os.path.isabs(a))
        ):
            return recorded, "prebuilt metaflow install (%s)" % record_path
    on_path = shutil.which("prebuilt", path=environ.get("PATH"))
    if on_path:
        return [on_path], "PATH"
    return None, (
        "%s is not set, no CLI was recorded by `prebuilt metaflow install` (or it moved), "
        "and `prebuilt` is not on PATH" % CLI_ENV
    )


def pull_secrets(pull_config):
    kubernetes = pull_config.get("kubernetes") or {}
    secrets = kubernetes.get("imagePullSecrets") or []
    return [s for s in secrets if isinstance(s, str) and s]


def batch_repository_credentials(pull_config):
    batch = pull_config.get("batch") or {}
    creds = batch.get("repositoryCredentials") or {}
    value = creds.get("credentialsParameter")
    return value if isinstance(value, str) and value else None
