"""Building blocks shared by the five services: settings, errors, auth, paging, faults, admin, app factory."""
