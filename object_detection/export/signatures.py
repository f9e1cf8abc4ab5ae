"""Names of the export contract, importable without TensorFlow (command-line --help, docs).

The SavedModel, TFLite and ONNX exports share them; `exporter_lib` and `tflite_exporter`
describe what each carries.
"""

SERVING_SIGNATURE = "serving_default"
SAVED_MODEL_DIRNAME = "saved_model"
CHECKPOINT_DIRNAME = "checkpoint"  # ckpt-0 beside the SavedModel, as the OD API's exporter

# SavedModel export (`exporter_main --input_type`), input `input_tensor` of:
INPUT_TYPES = (
    "image_tensor",                 # uint8 [B, H, W, 3]
    "float_image_tensor",           # float32 [B, H, W, 3], 0..255
    "encoded_image_string_tensor",  # string [B]: JPEG, PNG, GIF or BMP bytes
    "tf_example",                   # string [B]: serialized tf.Example with image/encoded
)
INPUT_NAME = "input_tensor"  # the OD API's name of the SavedModel input

# TFLite export: input `input` float32 [1, H, W, 3] (normalized), outputs by name.
TFLITE_INPUT_NAME = "input"
TFLITE_OUTPUT_NAMES = ("detection_boxes", "detection_classes", "detection_scores",
                       "num_detections")
QUANTIZATIONS = ("none", "fp16", "int8")
