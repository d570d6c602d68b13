# One-command entry points. Both create the project virtualenv (.venv) when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
# Tests marked `slow` (none today) stay out of the default run.
PYTEST_ARGS ?= -m "not slow"
TREES_CFG := configs/deepforest/yolox_nano_trees.py
TREES_OUT := output/yolox_nano_trees

.PHONY: setup demo test bench clean

setup:
	@bash dev/setup_venv.sh $(VENV)

# Main job: train YOLOX-Nano on the deepforest tree photos (CPU), evaluate with COCOEvaluator
# (prints AP / AP50), and draw the detections on a validation image.
demo: setup
	$(PY) tools/lazyconfig_train_net.py --config-file $(TREES_CFG) train.output_dir=$(TREES_OUT)
	$(PY) tools/demo.py --config-file $(TREES_CFG) --dataset deepforest_trees_val --max-images 2 \
		--output $(TREES_OUT)/demo --opts train.init_checkpoint=$(TREES_OUT)/model_final.pth

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

# Side-by-side benchmarks against the official YOLOX (timings, then the tree-dataset accuracy
# comparison); writes bench/RESULTS.md. About 80 minutes on a 2-core CPU (3 accuracy seeds): run it on an idle machine.
bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf output .pytest_cache
