"""MobileNet-V1 and MobileNet-V2 for ImageNet, from `tf_keras.applications`.

The Keras builders match the papers' architectures (alpha 1.0): MobileNet-V1 has
4,253,864 parameters (Keras `count_params()`, BatchNorm moving statistics included;
4,209,088 prunable: 1 conv + 13 depthwise + 13 pointwise + the classifier, 28
layers), MobileNet-V2 3,538,984. Both return logits (`classifier_activation=None`).
`weights="imagenet"` downloads Keras' pretrained weights (only when asked; needs a
224x224 input and 1000 classes); the default is random initialisation.
"""

from tf_globalmp import _compat

keras = _compat.keras


def mobilenet_v1(num_classes=1000, input_shape=(224, 224, 3), weights=None, dropout=1e-3):
    """MobileNet-V1 (alpha 1.0) returning logits."""
    return keras.applications.MobileNet(
        input_shape=tuple(input_shape), alpha=1.0, include_top=True, weights=weights,
        classes=num_classes, dropout=dropout, classifier_activation=None)


def mobilenet_v2(num_classes=1000, input_shape=(224, 224, 3), weights=None):
    """MobileNet-V2 (alpha 1.0) returning logits."""
    return keras.applications.MobileNetV2(
        input_shape=tuple(input_shape), alpha=1.0, include_top=True, weights=weights,
        classes=num_classes, classifier_activation=None)
