# The README's two commands: `make demo` and `make test`. Each sets everything up on a
# fresh Debian machine (Python 3.11, root, package registries only) and is a no-op
# for set-up steps already done.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out
# Debian packages the project runs: espeak-ng (speech with phoneme timings for the
# generated footage), ffmpeg (ffprobe for users' files; PyAV carries its own libraries).
DEB_PACKAGES := espeak-ng libespeak-ng1 ffmpeg chromium postgresql

.PHONY: setup demo test clean debs

setup: $(VENV)/.installed

debs:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# torch first, exactly pinned, so that nothing later can pull a CUDA build; mediapipe
# last and without its declared dependencies (DESIGN.md §6).
$(VENV)/.installed: pyproject.toml constraints.txt Makefile | debs
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[all,test]"
	$(BIN)/python -m pip install -q --no-deps mediapipe==0.10.21
	$(BIN)/python -c "import torch, mediapipe, cv2, av; assert cv2.__version__ < '5'"
	touch $@

demo: setup
	$(BIN)/emoforge demo --out $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
