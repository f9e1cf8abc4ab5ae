# The two commands: `make demo` and `make test`. Both create .venv and install the package first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test test-slow demo clean horovod

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test,onnx]'
	touch $(STAMP)

# Two test processes (--dist loadfile: a file's tests, and its module fixtures, stay together;
# --no-loadscope-reorder: files go out in the order tests/conftest.py sets, the longest first).
TEST_WORKERS ?= 2

test: $(STAMP) horovod
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

DEMO := demo_output
DEMO_OVERRIDES := \
	--config_override "train_input_reader.tf_record_input_reader.input_path=$(DEMO)/shapes/coco_train.record*" \
	--config_override "eval_input_reader.0.tf_record_input_reader.input_path=$(DEMO)/shapes/coco_val.record*" \
	--config_override "train_input_reader.label_map_path=$(DEMO)/shapes/label_map.pbtxt" \
	--config_override "eval_input_reader.0.label_map_path=$(DEMO)/shapes/label_map.pbtxt"
DEMO_CONFIG := configs/ssd_mobilenet_v2_fpn_shapes_128_cpu.config

demo: $(STAMP)
	$(PY) -m object_detection.dataset_tools.create_shapes_dataset --output_dir $(DEMO)/shapes \
	    --num_train 600 --num_val 100 --image_size 128
	rm -rf $(DEMO)/model $(DEMO)/exported $(DEMO)/drawn
	$(PY) object_detection/model_main.py --pipeline_config_path $(DEMO_CONFIG) \
	    --model_dir $(DEMO)/model --eval_count 1 --log_every_n 100 \
	    --raport_file $(DEMO)/model/report.json $(DEMO_OVERRIDES)
	$(PY) -m object_detection.utils.plot_report --raport_file $(DEMO)/model/report.json \
	    --output_dir $(DEMO)/plots
	$(PY) -m object_detection.export.exporter_main --pipeline_config_path $(DEMO_CONFIG) \
	    --trained_checkpoint_dir $(DEMO)/model --output_directory $(DEMO)/exported $(DEMO_OVERRIDES)
	$(PY) -m object_detection.export.infer --saved_model_dir $(DEMO)/exported \
	    --images $(DEMO)/shapes/val --output_json $(DEMO)/detections.json \
	    --output_images_dir $(DEMO)/drawn --label_map_path $(DEMO)/shapes/label_map.pbtxt \
	    --min_score 0.5
	@echo "demo done: COCO summary above; plots in $(DEMO)/plots, SavedModel in $(DEMO)/exported,"
	@echo "detections in $(DEMO)/detections.json, drawn images in $(DEMO)/drawn"

clean:
	rm -rf $(VENV) build *.egg-info

# Horovod 0.28.1 built from source for CPU against TF 2.21 (see tools/build_horovod.sh).
horovod: $(STAMP)
	tools/build_horovod.sh $(VENV)
