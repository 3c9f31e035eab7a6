"""Run configurations: shared field groups (`common`) and one module per task with
its presets. Every default lives once; `from tf_globalmp import configs; configs.X`
reaches every public name (and `configs.common`: the shared groups and helpers)."""

from tf_globalmp.configs import common  # noqa: F401

from tf_globalmp.configs.cifar10 import CIFAR10_CPU_ROWS
from tf_globalmp.configs.cifar10 import CIFAR10_LAYER_DISTRIBUTIONS
from tf_globalmp.configs.cifar10 import CIFAR10_MODES
from tf_globalmp.configs.cifar10 import CIFAR10_PRESETS
from tf_globalmp.configs.cifar10 import Cifar10Config
from tf_globalmp.configs.cifar10 import cifar10_config
from tf_globalmp.configs.har2 import HAR2_MODES
from tf_globalmp.configs.har2 import HAR2_PRESETS
from tf_globalmp.configs.har2 import Har2Config
from tf_globalmp.configs.har2 import har2_config
from tf_globalmp.configs.imagenet import IMAGENET_CPU_ROWS
from tf_globalmp.configs.imagenet import IMAGENET_DISTRIBUTIONS
from tf_globalmp.configs.imagenet import IMAGENET_MODES
from tf_globalmp.configs.imagenet import IMAGENET_PRECISIONS
from tf_globalmp.configs.imagenet import IMAGENET_PRESETS
from tf_globalmp.configs.imagenet import ImagenetConfig
from tf_globalmp.configs.imagenet import imagenet_config
from tf_globalmp.configs.quickstart import QuickstartConfig
from tf_globalmp.configs.quickstart import quickstart_config
