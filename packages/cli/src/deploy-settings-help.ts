/**
 * The settings `plan`, `build` and `gc` (which plans each flow it keeps) honour: they lock, name
 * and look up the same images. As `--help` text: one block here, so their help cannot drift apart.
 * The README's Configuration table has each in full; deploy-settings-help.test.ts checks that
 * every variable of that table is named by the commands that read it.
 */

/** The env, its image and where it goes: what `plan` shows and `build` makes. */
export const DEPLOY_SETTINGS_HELP = `
Environment (every setting in full: the README's Configuration table):
  METAFLOW_PREBUILT_BUILD_SERVICE         build service (default docker; see \`prebuilt backends\`)
  METAFLOW_PREBUILT_IMAGE_REGISTRY        image registry (default dockerhub)
  METAFLOW_PREBUILT_IMAGE_NAMESPACE       repository the images go to (default metaflow-prebuilt)
  METAFLOW_PREBUILT_BASE_IMAGE            base image (default python:3.11-slim-bookworm)
  METAFLOW_PREBUILT_GPU_BASE_IMAGE        base image of steps whose remote decorator asks for a GPU
  METAFLOW_PREBUILT_REGISTRY_CACHE        0: build even when the registry has the image (default 1)
  METAFLOW_PREBUILT_PLATFORM              linux-64, linux-aarch64, or linux-64,linux-aarch64: one image
                                          per platform and a multi-platform image index (default: the
                                          lock file's platforms, else linux-64)
  METAFLOW_PREBUILT_RECIPE                materialized (default) or micromamba
  METAFLOW_PREBUILT_MICROMAMBA_IMAGE      micromamba recipe: the image /bin/micromamba is copied from
                                          (default mambaorg/micromamba:1.5.10; pin it by digest)
  METAFLOW_PREBUILT_PRUNE                 leave out of the images, comma-separated: tests, static-libs,
                                          headers (default: nothing; --prune; materialized recipe)
  METAFLOW_PREBUILT_CONDA_CHANNELS        conda channels, comma-separated (default conda-forge)
  METAFLOW_PREBUILT_PYPI_INDEX_URL        PyPI index (else PIP_INDEX_URL, else your pip configuration)
  METAFLOW_PREBUILT_PIP_ISOLATED          1: ignore your pip configuration (pip --isolated)
  METAFLOW_PREBUILT_PIP_TIMEOUT           seconds one pip resolve may take in all (default 3600)
  METAFLOW_PREBUILT_GLIBC_VERSION         glibc of the target images (default 2.28)
  METAFLOW_PREBUILT_DEFAULT_PYTHON        python of steps that name none (default: the host python3's)
  METAFLOW_PREBUILT_PYTHON                the interpreter that reads the flow and runs pip (default python3)
  METAFLOW_PREBUILT_CACHE_DIR             repodata, solves, packages (default $XDG_CACHE_HOME/prebuilt,
                                          else ~/.cache/prebuilt)
  METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT  seconds a registry, channel, index or the Docker daemon may send
                                          nothing before a request fails (default 60; a build's own
                                          output has no such limit)
  METAFLOW_PREBUILT_NETWORK_DEADLINE      seconds one request may take at most (default 1800)
  METAFLOW_PREBUILT_REPODATA_MAX_SIZE     MiB one repodata.json may have (default 1024, at most 4096)`;

/** The backends' own settings, named by prefix: each backend's README has them. */
export const BACKEND_SETTINGS_HELP = `
Settings of the selected build service and registry (each backend's README has them all):
  DOCKER_HOST                             Docker daemon (docker, buildx; default /var/run/docker.sock)
  DOCKER_CONFIG                           directory of the config.json with your registry logins
  METAFLOW_PREBUILT_OCI_*                 oci: _LAYER_COMPRESSION, _LAYERS, _RUNNERS, _PREFETCH,
                                          _ESTARGZ_BASE, …
  METAFLOW_PREBUILT_LOCAL_REGISTRY*       local: the host (127.0.0.1:5000), _PULL_HOST, _USERNAME,
                                          _PASSWORD, _INSECURE
  METAFLOW_PREBUILT_DOCKERHUB_*           dockerhub: _NAMESPACE, _USERNAME, _PASSWORD, …
  METAFLOW_PREBUILT_ECR_*                 ecr: _ACCOUNT, _REGION, …
  METAFLOW_PREBUILT_GCR_*                 gcr: _HOST, _PROJECT, …
  METAFLOW_PREBUILT_DOCKER_*              docker: _BUILDER, _NETWORK, _KEEP_IMAGES, _API_VERSION
  METAFLOW_PREBUILT_BUILDX_*              buildx: _BUILDER, _DOCKER, _NETWORK, _TIMEOUT, _KEEP_IMAGES
  METAFLOW_PREBUILT_KANIKO_*              kaniko: _CONTEXT_BUCKET, _NAMESPACE, _IMAGE, _TIMEOUT, …
  METAFLOW_PREBUILT_CODEBUILD_*           codebuild: _PROJECT, _BUCKET, _REGION, _TIMEOUT, …`;
