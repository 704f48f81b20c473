"""Import every area's models so the metadata (and `flask db check`) sees all tables."""
from ..accounts import models as _accounts  # noqa: F401
from ..analytics import models as _analytics  # noqa: F401
from ..audit import models as _audit  # noqa: F401
from ..devices import models as _devices  # noqa: F401
from ..invitations import models as _invitations  # noqa: F401
from ..mail import models as _mail  # noqa: F401
from ..tenancy import models as _tenancy  # noqa: F401
from ..security import models as _security  # noqa: F401
from ..sites import models as _sites  # noqa: F401
from ..tenants import models as _tenants  # noqa: F401
from ..jobs import models as _jobs  # noqa: F401
from ..organization import models as _organization  # noqa: F401
from ..api import models as _api  # noqa: F401
from ..tasks import models as _tasks  # noqa: F401
from ..notifications import models as _notifications  # noqa: F401
from ..agents import models as _agents  # noqa: F401
from ..scim import models as _scim  # noqa: F401
