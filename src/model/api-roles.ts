import { z } from 'zod';

/** The API's roles, weakest first: each one may do what the ones before it may. */
export const API_ROLES = ['viewer', 'operator', 'admin'] as const;
export type ApiRole = (typeof API_ROLES)[number];

export const apiRoleSchema = z.enum(API_ROLES, { message: `must be one of ${API_ROLES.join(', ')}` });

/** Whether `role` may do what needs `needed`. */
export const roleAllows = (role: ApiRole, needed: ApiRole): boolean => API_ROLES.indexOf(role) >= API_ROLES.indexOf(needed);
