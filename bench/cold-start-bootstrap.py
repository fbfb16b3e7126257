"""B2's baseline: create a locked env at container start, as Metaflow's bootstrap does, then run the step.

Run by the base image's python3 (full stdlib, pip, zstd) as `python3 -c <this file> <manifest.json text>`.
The manifest lists the locked files (kind, url, filename, sha256), the env prefix and the step code.

1. download every locked file from the local channel/index (urllib, 8 at a time) and check its sha256;
2. conda packages: unpack .conda (zip of info-*.tar.zst + pkg-*.tar.zst) and .tar.bz2 into the prefix,
   remap noarch python packages (site-packages/ -> lib/pythonX.Y/site-packages/, python-scripts/ -> bin/),
   replace the build prefix placeholder in text and binary files (paths.json);
3. wheels: `python3 -m pip install --no-deps --no-index --target <prefix>/lib/pythonX.Y/site-packages`;
4. exec the env's bin/python with the step code.

Left out, which only makes the baseline faster: a solver, conda-meta records, noarch entry-point
scripts and .pyc compilation, link scripts.
"""
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor

manifest = json.loads(sys.argv[1])
prefix = manifest["prefix"]
pyver = manifest["pythonVersion"]  # "3.11"
site = "lib/python%s/site-packages" % pyver
work = "/tmp/bootstrap-pkgs"
os.makedirs(work, exist_ok=True)
os.makedirs(prefix, exist_ok=True)


def download(pkg):
    path = os.path.join(work, pkg["filename"])
    with urllib.request.urlopen(pkg["url"]) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != pkg["sha256"]:
        raise SystemExit("sha256 mismatch: " + pkg["url"])
    with open(path, "wb") as f:
        f.write(data)
    return path


with ThreadPoolExecutor(8) as pool:
    paths = list(pool.map(download, manifest["packages"]))


def unzstd(data):
    return subprocess.run(["zstd", "-dcq"], input=data, stdout=subprocess.PIPE, check=True).stdout


def conda_tars(path):
    """(info tar, pkg tar) of a .conda or a .tar.bz2 (the same tar twice)."""
    if path.endswith(".conda"):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            info = next(n for n in names if n.startswith("info-"))
            pkg = next(n for n in names if n.startswith("pkg-"))
            return (tarfile.open(fileobj=io.BytesIO(unzstd(z.read(info)))), tarfile.open(fileobj=io.BytesIO(unzstd(z.read(pkg)))))
    t = tarfile.open(path, "r:bz2")
    return t, t


def member_text(tar, name):
    try:
        return json.loads(tar.extractfile(name).read())
    except KeyError:
        return None


def remap(name, noarch):
    if noarch != "python":
        return name
    if name.startswith("site-packages/"):
        return site + name[len("site-packages") :]
    if name.startswith("python-scripts/"):
        return "bin" + name[len("python-scripts") :]
    return name


def replace_prefix(path, placeholder, mode):
    with open(path, "rb") as f:
        data = f.read()
    old = placeholder.encode()
    new = prefix.encode()
    if mode == "text":
        data = data.replace(old, new)
    else:
        # Binary: replace inside each NUL-terminated string and pad it back to its length.
        def pad(match):
            rest = match.group(1)
            out = new + rest
            return out + b"\0" * (len(match.group(0)) - len(out) - 1) + b"\0"

        data = re.sub(re.escape(old) + b"([^\0]*?)\0", pad, data)
    with open(path, "wb") as f:
        f.write(data)


wheels = []
for pkg, path in zip(manifest["packages"], paths):
    if pkg["kind"] != "conda":
        wheels.append(path)
        continue
    info, body = conda_tars(path)
    index = member_text(info, "info/index.json") or {}
    noarch = index.get("noarch")
    files = (member_text(info, "info/paths.json") or {}).get("paths", [])
    members = [m for m in body.getmembers() if not m.name.startswith("info/")]
    for m in members:
        m.name = remap(m.name, noarch)
    body.extractall(prefix, members=members)
    for entry in files:
        if "prefix_placeholder" in entry:
            replace_prefix(os.path.join(prefix, remap(entry["_path"], noarch)), entry["prefix_placeholder"], entry.get("file_mode", "text"))

if wheels:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--disable-pip-version-check",
         "--no-cache-dir", "--no-compile", "--target", os.path.join(prefix, site)] + wheels,
        check=True,
    )

python = os.path.join(prefix, "bin", "python")
os.execv(python, [python, "-u", "-c", manifest["code"]])
