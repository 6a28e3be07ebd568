/* Content-Type of an attachment, guessed from its file name. */
#ifndef SE_MIMETYPES_H
#define SE_MIMETYPES_H

/* "type/subtype" for the extension of filename (case-insensitive), or
 * "application/octet-stream" when unknown.  Never NULL; static storage. */
const char *se_mime_type_for_name(const char *filename);

#endif
