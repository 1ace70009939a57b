/* placeholder: the web branch replaces this file */
