"""TF Serving warm-up requests: assets.extra/tf_serving_warmup_requests."""
import os

import tensorflow as tf
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

_SENTENCES = ["the company said it expects to report a loss",
              "stocks fell sharply in new york"]

_IDS = tf.constant([[2, 5, 9, 0], [2, 7, 3, 4]])

REQUESTS = {
    "score": {"text": tf.constant(_SENTENCES)},
    "next_words": {"text": tf.constant(_SENTENCES)},
    "generate": {"prompt": tf.constant(_SENTENCES),
                 "max_tokens": tf.constant([5, 5]),
                 "temperature": tf.constant([1.0, 0.0])},
    "log_probs": {"token_ids": _IDS},
    "tokenize": {"text": tf.constant(_SENTENCES)},
}


def step_request(state_units):
  """A `step` request from the start of two streams.

  Args:
    state_units: {state input name: units}, e.g. {'state_0_h': 200, ...}.
  """
  request = {"token_ids": _IDS, "targets": tf.roll(_IDS, -1, axis=1)}
  request.update({name: tf.zeros([2, units])
                  for name, units in state_units.items()})
  return request


def write_requests(saved_model_dir, state_units):
  """Writes one real PredictionLog request per signature.

  Args:
    saved_model_dir: the SavedModel's directory.
    state_units: the module's `state_units`; None: no `step` signature.
  """
  extra = os.path.join(saved_model_dir, "assets.extra")
  os.makedirs(extra, exist_ok=True)
  path = os.path.join(extra, "tf_serving_warmup_requests")
  with tf.io.TFRecordWriter(path) as writer:
    requests = dict(REQUESTS)
    if state_units is not None:  # Recurrent models only.
      requests["step"] = step_request(state_units)
    for signature, inputs in requests.items():
      request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
          signature_name=signature))
      for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(request=request))
      writer.write(log.SerializeToString())
  return path
