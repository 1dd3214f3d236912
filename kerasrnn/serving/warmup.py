"""TF Serving warm-up requests: assets.extra/tf_serving_warmup_requests."""
import os

import tensorflow as tf
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

_SENTENCES = ["the company said it expects to report a loss",
              "stocks fell sharply in new york"]

_IDS = tf.constant([[2, 5, 9, 0], [2, 7, 3, 4]])
_NEXT = tf.constant([[5, 9, 0, 0], [7, 3, 4, 0]])  # 0: not scored.

REQUESTS = {
    "score": {"text": tf.constant(_SENTENCES)},
    "next_words": {"text": tf.constant(_SENTENCES)},
    "generate": {"prompt": tf.constant(_SENTENCES),
                 "max_tokens": tf.constant([5, 5]),
                 "temperature": tf.constant([1.0, 0.0])},
    "log_probs": {"token_ids": _IDS},
    "tokenize": {"text": tf.constant(_SENTENCES)},
}


def step_request(states):
  """A `step` request from the start of two streams.

  Args:
    states: {state input name: tensor} of two rows at a stream's start (the
      module's `initial_states(2)`).
  """
  return {"token_ids": _IDS, "targets": _NEXT, **states}


def write_requests(saved_model_dir, states):
  """Writes one real PredictionLog request per signature.

  Args:
    saved_model_dir: the SavedModel's directory.
    states: the `step` request's state inputs (`step_request`).
  """
  extra = os.path.join(saved_model_dir, "assets.extra")
  os.makedirs(extra, exist_ok=True)
  path = os.path.join(extra, "tf_serving_warmup_requests")
  with tf.io.TFRecordWriter(path) as writer:
    requests = dict(REQUESTS, step=step_request(states))
    for signature, inputs in requests.items():
      request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
          signature_name=signature))
      for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(request=request))
      writer.write(log.SerializeToString())
  return path
