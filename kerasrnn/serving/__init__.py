"""SavedModel export for TensorFlow Serving and other TensorFlow programs."""
