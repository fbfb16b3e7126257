"""The image map `prebuilt build` writes, and how the extension finds the prebuilt CLI.

Pure Python (no Metaflow import), so it is unit-tested on its own. Errors are ImageMapError:
a message saying what is wrong, and a hint saying what to do.
"""

import json
import os
import re
import shlex
import shutil
import stat

IMAGE_MAP_ENV = "METAFLOW_PREBUILT_IMAGE_MAP"
CLI_ENV = "PREBUILT_CLI"
# Written by `prebuilt metaflow install` beside this file: the CLI that installed the extension.
INSTALL_RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prebuilt_install.json")
REMOTE_DECORATORS = ("kubernetes", "batch")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# The interpreter goes into the shell command Metaflow runs the task with (`bash -c "... <python>
# -u flow.py step ..."`: kubernetes, batch, argo, step functions): an absolute path of plain
# characters only, as prebuilt writes it (/opt/prebuilt/env/bin/python).
INTERPRETER = re.compile(r"^(?!.*(?:^|/)\.\.(?:/|$))/[A-Za-z0-9._+/-]+$")
# An image reference (the distribution grammar): [host[:port]/]path[:tag][@algorithm:hex].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?"
IMAGE_REFERENCE = re.compile(
    r"^(?:%s/)?%s(?:/%s)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}))?$"
    % (_HOST, _COMPONENT, _COMPONENT)
)
# A Kubernetes secret name (DNS subdomain, RFC 1123).
SECRET_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")


class ImageMapError(Exception):
    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint

    def __str__(self):
        text = super().__str__()
        return "%s\n%s" % (text, self.hint) if self.hint else text


def shown(value):
    """A value of the map as a message quotes it: control characters escaped, at most 200 characters."""
    text = value if isinstance(value, str) else repr(value)
    text = text[:200] + "..." if len(text) > 200 else text
    return json.dumps(text)[1:-1].replace('\\"', '"')


def _rebuild_hint(flow_file):
    return "Run `prebuilt build %s` again to rewrite the image map, or point %s at the map it wrote." % (
        flow_file,
        IMAGE_MAP_ENV,
    )


def _fail_shape(path, what):
    raise ImageMapError(
        "The image map %s is not one prebuilt wrote: %s." % (path, what),
        "Run `prebuilt build <flow.py>` again (it rewrites the map), or point %s at the file it wrote."
        % IMAGE_MAP_ENV,
    )


# As the CLI's: a map prebuilt wrote is far smaller.
MAX_IMAGE_MAP_BYTES = 64 << 20


def _read_regular_file(path):
    """The bytes of the regular file at `path`, opened without blocking: a FIFO or a device (a map
    path naming /dev/zero or a pipe) is refused at once instead of hanging or filling memory."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            _fail_shape(path, "it is not a regular file")
        if info.st_size > MAX_IMAGE_MAP_BYTES:
            _fail_shape(path, "it is larger than %d MiB (%d bytes)" % (MAX_IMAGE_MAP_BYTES >> 20, info.st_size))
        data = f.read(MAX_IMAGE_MAP_BYTES + 1)
    if len(data) > MAX_IMAGE_MAP_BYTES:
        _fail_shape(path, "it is larger than %d MiB" % (MAX_IMAGE_MAP_BYTES >> 20))
    return data


def load_image_map(path):
    """Reads and checks the image map at `path`."""
    try:
        text = _read_regular_file(path).decode("utf-8")
    except FileNotFoundError:
        raise ImageMapError(
            "The image map %s (from %s) does not exist." % (path, IMAGE_MAP_ENV),
            "Run `prebuilt build <flow.py>` to build the images and write it, or unset %s."
            % IMAGE_MAP_ENV,
        )
    except UnicodeDecodeError:
        _fail_shape(path, "not UTF-8 text")
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
            _fail_shape(path, "step '%s' lacks image, python or envId" % shown(name))
        env_id = entry.get("envId")
        if env_id is not None and not isinstance(images.get(env_id), dict):
            _fail_shape(path, "step '%s' names env %s, which is not in 'images'" % (shown(name), shown(env_id)))
    return data


def check_flow(image_map, path, flow_name, flow_file):
    if image_map["flow"] != flow_name:
        raise ImageMapError(
            "The image map %s is for flow %s, not %s." % (path, shown(image_map["flow"]), flow_name),
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
    result = {
        "image": pinned_image(entry, image),
        "tag": entry["image"],
        "python": entry["python"],
        "envId": entry["envId"],
        "pullConfig": pull if isinstance(pull, dict) else {},
        "packages": step_packages(entry),
    }
    check_step_image(result, path, step_name, flow_file)
    return result


def step_packages(entry):
    """The packages the step's image was built for ({"conda": {...}, "pypi": {...}}, name -> spec), or
    None for a map written without them (not checked)."""
    packages = entry.get("packages")
    if not isinstance(packages, dict):
        return None
    out = {}
    for kind in ("conda", "pypi"):
        specs = packages.get(kind)
        if not isinstance(specs, dict):
            return None
        out[kind] = {str(name): str(spec) for name, spec in specs.items()}
    return out


def packages_difference(built, wanted):
    """Each package whose spec differs between what Metaflow asks for and what the image was built
    for, as a phrase (`pypi pandas: Metaflow asks for 2.2.2, the image has none`); empty when they agree."""
    lines = []
    for kind in ("conda", "pypi"):
        have, want = built.get(kind, {}), wanted.get(kind, {})
        for name in sorted(set(have) | set(want)):
            if have.get(name) != want.get(name):
                lines.append(
                    "%s %s: Metaflow asks for %s, the image has %s"
                    % (kind, shown(name), _spec_text(want.get(name)), _spec_text(have.get(name)))
                )
    return lines


def _spec_text(spec):
    if spec is None:
        return "none"
    return "any version" if spec == "" else shown(spec)


def check_step_image(image, path, step_name, flow_file):
    """Checks what the map gives a step before Metaflow uses it, as the CLI checks it: the map may
    come from a cloned repository. The interpreter goes into the task's shell command, the image
    and the pull settings into the job and onto the terminal."""
    where = "The image map %s names" % path
    if not IMAGE_REFERENCE.fullmatch(image["image"]) or len(image["image"]) > 1024:
        raise ImageMapError(
            "%s an image for step '%s' that is not an image reference ('%s')." % (where, step_name, shown(image["image"])),
            _rebuild_hint(flow_file),
        )
    if not INTERPRETER.fullmatch(image["python"]) or len(image["python"]) > 1024:
        raise ImageMapError(
            "%s the interpreter '%s' for step '%s', which is not an absolute path of letters, digits "
            "and . _ + - / (it goes into the shell command the task runs)." % (where, shown(image["python"]), step_name),
            _rebuild_hint(flow_file),
        )
    pull_config = image["pullConfig"]
    kubernetes = pull_config.get("kubernetes") or {}
    batch = pull_config.get("batch") or {}
    secrets = kubernetes.get("imagePullSecrets") or [] if isinstance(kubernetes, dict) else None
    credentials = batch.get("repositoryCredentials") or {} if isinstance(batch, dict) else None
    if not isinstance(secrets, list) or not isinstance(credentials, dict):
        raise ImageMapError(
            "%s a pull config for step '%s' that is not one prebuilt wrote." % (where, step_name),
            _rebuild_hint(flow_file),
        )
    for secret in secrets:
        if secret != "" and (not isinstance(secret, str) or not SECRET_NAME.fullmatch(secret)):
            raise ImageMapError(
                "%s the pull secret '%s' for step '%s', which is not a Kubernetes secret name." % (where, shown(secret), step_name),
                _rebuild_hint(flow_file),
            )
    parameter = credentials.get("credentialsParameter")
    if parameter not in (None, "") and (not isinstance(parameter, str) or not re.fullmatch(r"[!-~]{1,2048}", parameter)):
        raise ImageMapError(
            "%s the Batch repository credentials '%s' for step '%s', which is not a secret's ARN." % (where, shown(parameter), step_name),
            _rebuild_hint(flow_file),
        )


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
        try:
            argv = shlex.split(explicit)
        except ValueError as e:
            return None, "%s='%s' is not a command line (%s)" % (CLI_ENV, shown(explicit), e)
        if argv and os.sep not in argv[0]:
            # A bare program name is looked for as `prebuilt` is: never through a relative PATH entry.
            found, relative = which_absolute(argv[0], environ.get("PATH"))
            if found:
                argv[0] = found
            elif relative is not None:
                return None, (
                    "%s names '%s', found only in '%s', a PATH entry relative to the current directory "
                    "(a cloned flow's directory could put any program there): it is not run. Remove that "
                    "entry from PATH" % (CLI_ENV, shown(argv[0]), shown(relative or "(empty)"))
                )
        return argv, CLI_ENV
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
    on_path, relative = which_absolute("prebuilt", environ.get("PATH"))
    if on_path:
        return [on_path], "PATH"
    if relative is not None:
        return None, (
            "%s is not set, no CLI was recorded by `prebuilt metaflow install`, and `prebuilt` was "
            "found only in '%s', a PATH entry relative to the current directory (a cloned flow's "
            "directory could put any program there): it is not run. Remove that entry from PATH"
            % (CLI_ENV, shown(relative or "(empty)"))
        )
    return None, (
        "%s is not set, no CLI was recorded by `prebuilt metaflow install` (or it moved), "
        "and `prebuilt` is not on PATH" % CLI_ENV
    )


def which_absolute(name, path):
    """`name` in PATH's absolute directories only: (its path, None), or (None, the first empty or
    relative entry it is in, which is not used: it would run a program from the current directory),
    or (None, None)."""
    skipped = None
    for entry in (path or "").split(os.pathsep):
        if os.path.isabs(entry):
            found = shutil.which(name, path=entry)
            if found:
                return found, None
        elif skipped is None and shutil.which(name, path=entry or os.curdir):
            skipped = entry
    return None, skipped


def pull_secrets(pull_config):
    kubernetes = pull_config.get("kubernetes") or {}
    secrets = kubernetes.get("imagePullSecrets") or []
    return [s for s in secrets if isinstance(s, str) and s]


def batch_repository_credentials(pull_config):
    batch = pull_config.get("batch") or {}
    creds = batch.get("repositoryCredentials") or {}
    value = creds.get("credentialsParameter")
    return value if isinstance(value, str) and value else None
