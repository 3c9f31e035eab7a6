"""Keras 3 + granularity="channel": refused with a message naming the tf-keras route
(the Keras 3 entry points call this check first; no Keras 3 import here)."""

import pytest

from tf_globalmp.channels import keras3 as channels_keras3


def test_channel_granularity_is_refused_with_the_tf_keras_route():
    with pytest.raises(ValueError, match="not available for Keras 3 models yet.*tf-keras.*"
                                         "granularity='channel'.*tf_globalmp.shrink"):
        channels_keras3.check_granularity("channel")


def test_weight_granularity_passes_and_others_are_named():
    channels_keras3.check_granularity("weight")
    with pytest.raises(ValueError, match="got 'filter'"):
        channels_keras3.check_granularity("filter")
